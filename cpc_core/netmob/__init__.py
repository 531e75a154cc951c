"""netmob."""
