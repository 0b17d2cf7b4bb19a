"""Active/standby controllers on one database: an epoch-fenced lease row (controller.lease.keeper)."""
