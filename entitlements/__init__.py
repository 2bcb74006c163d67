"""Entitlements: who may see what, decided from member rows, never from Patreon live.

``entitlements.rule`` is the one rule, shared by the worker (which records an
``entitlement:changed`` event when a member's access changes) and web (which answers
access checks). It is pure: rows and a clock in, a decision out.
"""
