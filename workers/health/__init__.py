"""Health: account, template and number changes Meta reports on the same webhook, compared with
their last known state (tracker) and turned into problems that alert and recoveries that resolve."""
