# The Workflowable image: the package, the worker entry point and the example app.
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY workflowable ./workflowable
COPY workers ./workers
COPY examples ./examples
RUN pip install --no-cache-dir .
ENTRYPOINT ["workflowable"]
