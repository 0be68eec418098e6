"""HTTP routers, one per resource: health, methods, runs, events, shares, reports, pages."""
