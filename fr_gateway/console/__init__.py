"""The Command Center console: a web page where operators watch cameras, decisions and alerts live and adjudicate
alerts, and supervisors see analytics. A separate process and a client of one or more gateways like any other
(gRPC over mutual TLS with an operator certificate), so it depends on the contract only and the gateway never
imports it."""
