"""Decisions: pure functions of (policy, request, state). Each serves live and replay alike."""

from .context import RouteChoice, RouteContext, estimate_prompt_tokens, route_context
from .routing import RoutePlan, draw, plan_route

__all__ = ["RouteChoice", "RouteContext", "RoutePlan", "draw", "estimate_prompt_tokens", "plan_route", "route_context"]
