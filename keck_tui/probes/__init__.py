"""eBPF probes (bcc): on-CPU time per process and core from sched_switch.

``oncpu.bpf.c`` (top-level ``probes/`` in a checkout, ``keck_tui/probes/bpf/`` in the
wheel) is the probe; ``loader.OnCpuProbe`` compiles, attaches and reads
it; ``btf`` finds task_struct offsets in the running kernel's BTF. Importing this
package does not import bcc (see keck_tui/bcc_import.py).
"""
