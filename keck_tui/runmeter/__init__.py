"""``keck-top run``: the energy of one command's whole process tree.

- :mod:`launch`: start CMD so it can be placed in a cgroup and the sampler primed
  before it execs; credentials of the invoking user under sudo; exit statuses.
- :mod:`tracking`: which processes belong to the tree (cgroup v2, systemd user
  scope, eBPF fork events, parent-pid polling) and the kernel's CPU time of it.
- :mod:`meter`: per-interval energy of the tree from the collector's snapshots,
  and the run's totals with bounds.
- :mod:`stats`: mean and 95 % confidence interval over ``--repeat`` runs.
- :mod:`output`: the text report and the ``keck-top-run/1`` JSON document.
- :mod:`session`: the loop that ties them together.
"""
