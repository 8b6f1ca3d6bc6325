"""Cameras as a service: the config file, one isolated watcher per camera, the watchdog, and the
service that stores their events with their alerts (docs/SERVICE.md)."""
from .config import CameraConfig, ConfigError, ServiceConfig, load_config
from .supervisor import CameraHealth, ReloadReport, Supervisor

__all__ = ["CameraConfig", "CameraHealth", "ConfigError", "ReloadReport", "ServiceConfig", "Supervisor",
           "load_config"]
