"""Open and click tracking of sent mail (SPEC T1-T4).

The public tracking function imports this package on every cold start, so nothing here is
imported eagerly: `tokens`, `html` and `classify` are stdlib only; boto3 and Powertools
Parameters are imported on first use by `keys` and `store`.
"""
