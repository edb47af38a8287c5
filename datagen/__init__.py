"""Fake clicks, checkouts and users for the checkout-attribution pipeline."""
