"""Device drivers: one module per family, registered where it is defined (see `base.register_*`)."""
