# The image of the gate's rank pods (--gpufabric-k8s-image) and of a controller pod that runs
# the gate inside the cluster (deploy/cronjob.yaml). It must hold torch with CUDA and NCCL,
# and this package; on EFA instances also libfabric and aws-ofi-nccl, as your training image
# does: build FROM your training image to test exactly what your jobs run.
#
#   docker build -t REGISTRY/pytest-gpufabric:0.2.0 .
#   docker build --build-arg BASE=REGISTRY/your-training-image:tag -t REGISTRY/gate:tag .
#
# torch is not reinstalled: the base image's build (CUDA, its NCCL) is the one under test.
ARG BASE=pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime
FROM ${BASE}

COPY pyproject.toml README.md /src/pytest-gpufabric/
COPY pytest_gpufabric /src/pytest-gpufabric/pytest_gpufabric
COPY thresholds /src/pytest-gpufabric/thresholds
RUN python -m pip install --no-cache-dir "/src/pytest-gpufabric[kubernetes]" \
 && rm -rf /src/pytest-gpufabric \
 && python -c "import torch, pytest_gpufabric; print('torch', torch.__version__)"

# Rank pods get their own command from the launcher; this one runs the gate (controller).
ENTRYPOINT ["python", "-m", "pytest", "--pyargs", "pytest_gpufabric.suites", "-p", "no:cacheprovider"]
