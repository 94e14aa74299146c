"""Tests of the kubernetes launcher against the real local cluster of ../shared/k8s."""
