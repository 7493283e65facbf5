"""The RQ side of wastatus: storage of taken failures, jobs, routing, retries and alerts.

Nothing here imports Flask: jobs are plain functions over JSON data.
"""
