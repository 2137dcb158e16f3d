"""Work counters: energy per unit of useful work (joules per token, per request, per frame).

- :mod:`spec`: what to count — ``[[work]]`` config entries: which rows, which Prometheus
  counter at which URL, in which unit.
- :mod:`presets`: the same, detected from the command lines of inference servers
  (vLLM, llama.cpp's server, Hugging Face TGI, SGLang), the URL from their own flags.
- :mod:`exposition`: one counter's value out of a Prometheus text exposition
  (prometheus_client's parser).
- :mod:`rate`: units per interval from successive counter values (resets, gaps).
- :mod:`scraper`: the scrapes, on a background loop, bounded and timed out.
- :mod:`attach`: per snapshot, the matched rows gain a ``work`` object (units/s, J per unit
  with its bound, units/s per watt, cost and gCO2e per million units).
"""
