"""The controller's side of alert rules (the decisions are alerts/, pure): storage, the facts collector, the
evaluation and delivery jobs, the channels (webhook, e-mail, the dashboard) and the API. docs/alerts.md."""
