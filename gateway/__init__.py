"""The gateway: intake, policy, matching, routing, delivery, audit and store."""
