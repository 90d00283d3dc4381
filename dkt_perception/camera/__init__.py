"""Camera sources: a live D435 or a RealSense .bag (pyrealsense2), and the synthetic scene.

All sources return :class:`~dkt_perception.camera.frames.CameraFrame` from
``read()``; :func:`~dkt_perception.camera.sources.open_source` picks one by name.
"""
