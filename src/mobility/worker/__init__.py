"""The worker (`mobility worker`): delivers the outboxes (notifications, webhook deliveries) and runs the
periodic jobs. Like the API and the CLI it sits on top of the domains and opens AppSessions."""
