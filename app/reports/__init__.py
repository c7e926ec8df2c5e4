"""Profitability reports: facts refreshed after each sync, summed in SQL per request.

`refresh` orders a refresh's work and `kept_sums` builds every row it writes; `repository`
builds the queries a report runs over those rows.
"""
