"""avatargen: pose-guided avatars from photos through ControlNet OpenPose models."""

__version__ = "0.1.0"
