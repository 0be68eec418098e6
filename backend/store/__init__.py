"""The durable store, one module per concern: ``runs``, ``epochs`` (records and
projections), ``leases`` (claim, heartbeat, finish, release, the reaper's pass), ``eventlog``
(the per-run event log), ``shares``; ``models`` and ``database`` beneath them."""
