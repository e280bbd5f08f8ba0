"""Ground Truth: a private workteam, then an image classification labeling job
that it works on (the job gets the team through its ``workteam_arn`` output).

``python -m components.pipelines.ground_truth [out.yaml]`` compiles it.
(No ``from __future__ import annotations``: kfp reads the annotations as types.)
"""

import sys

from kfp import compiler, components, dsl

from components.pipelines import COMPONENTS

workteam_op = components.load_component_from_file(str(COMPONENTS / "workteam.yaml"))
ground_truth_op = components.load_component_from_file(str(COMPONENTS / "ground_truth.yaml"))

BASE = "s3://my-bucket/birds"  # change to your bucket


@dsl.pipeline(
    name="ground-truth-image-classification",
    description="Create a private workteam, then label images with it in Ground Truth",
)
def ground_truth(
    role: str,
    user_pool: str,
    user_groups: str,
    client_id: str,
    region: str = "us-east-1",
    team_name: str = "bird-labelers",
    sns_topic: str = "",
) -> None:
    team = workteam_op(
        region=region,
        team_name=team_name,
        description="People who label bird photos",
        user_pool=user_pool,
        user_groups=user_groups,
        client_id=client_id,
        sns_topic=sns_topic,
    )
    ground_truth_op(
        region=region,
        role=role,
        label_attribute_name="species",
        manifest_location=f"{BASE}/input.manifest",
        output_location=f"{BASE}/labels",
        task_type="image classification",
        worker_type="private",
        workteam_arn=team.outputs["workteam_arn"],
        label_category_config=f"{BASE}/categories.json",
        ui_template=f"{BASE}/template.liquid.html",
        title="Which bird is this?",
        description="Choose the species of the bird in the photo",
        task_keywords="images,birds,classification",
        num_workers_per_object=3,
        time_limit=300,
        task_availibility=86400,
        max_concurrent_tasks=100,
    )


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "ground_truth.yaml"
    compiler.Compiler().compile(ground_truth, target)
