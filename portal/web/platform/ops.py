"""Service endpoints for load balancers and the platform: /health and /info."""

from __future__ import annotations

from flask import Blueprint, jsonify

from portal.services.platform import service_health

bp = Blueprint("service", __name__)


@bp.get("/health")
def health():
    report = service_health.health_report()
    return jsonify(report), (200 if report["checks"]["database"] == "ok" else 503)


@bp.get("/info")
def info():
    return jsonify(service_health.service_info())
