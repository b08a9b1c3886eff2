"""Gunicorn settings for the one worker pool shared by every tenant.

Values come from the environment so a host can be sized without editing the file.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", 1))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 20
# Recycle workers now and then: a connection that visited many tenant schemas grows a
# large catalog cache in PostgreSQL and in the worker.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 5000))
max_requests_jitter = 500
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
proc_name = "tenant-cms"
# Gunicorn 24+ opens a control socket at one fixed path per user: several pools on one
# host (tests, benchmarks, a staging pool) would fight over it; nothing here uses it.
control_socket_disable = True
