"""The inbox: failures taken from the webhook (intake) and explained by the catalog (enrich)."""
