"""The partner side: creditor adapters, the municipality's tools and the team client."""
