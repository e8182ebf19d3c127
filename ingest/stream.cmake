# Camera streams (CameraSource, rtsp-serve): sources land with the ingest issue.
