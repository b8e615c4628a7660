"""Decisions: pure functions of (policy, request, state). Each serves live and replay alike."""

from .routing import RoutePlan, draw, plan_route

__all__ = ["RoutePlan", "draw", "plan_route"]
