"""tiltguard: pelvic tilt, obliquity and rotation for runners from a waist-worn IMU clip."""

__version__ = "0.1.0"
