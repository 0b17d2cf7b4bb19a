"""The controller's HTTP routers: thin, each route calls one service function."""
