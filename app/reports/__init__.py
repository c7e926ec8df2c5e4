"""Profitability reports: facts refreshed after each sync, summed in SQL per request."""
