"""smrun: SageMaker jobs on one asyncio engine."""
