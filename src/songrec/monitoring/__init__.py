"""Monitoring: drift and online quality of served traffic, alerts, the traffic simulator."""
