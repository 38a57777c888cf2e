"""Service endpoints for load balancers and the platform: /health and /info."""

from __future__ import annotations

from flask import Blueprint, jsonify

from portal.services.platform import service_health

bp = Blueprint("service", __name__)


@bp.get("/health")
def health():
    """Every dependency, for people and monitoring: 503 only when nothing can be served."""
    report = service_health.health_report()
    resp = jsonify(report)
    resp.status_code = 503 if report["status"] == "unhealthy" else 200
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/health/live")
def live():
    """For orchestrators: the process answers (no dependency is asked)."""
    return jsonify({"status": "alive"})


@bp.get("/health/ready")
def ready():
    """For orchestrators and load balancers: this process can serve requests now."""
    report = service_health.readiness()
    return jsonify(report), (200 if report["status"] == "ready" else 503)


@bp.get("/info")
def info():
    return jsonify(service_health.service_info())
