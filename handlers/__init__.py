"""One module per SageMaker resource kind."""
