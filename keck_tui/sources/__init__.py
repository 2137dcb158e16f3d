"""Remote sources: keck-top agents, fleets of them, a Keck controller and Prometheus.

Every source decodes into the same keck-top/1 tree (fleet → cluster → node → …).
"""
