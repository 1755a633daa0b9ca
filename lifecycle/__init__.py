"""The pure core: plans, scenarios and ``state_at``. No I/O, no framework, no store."""
