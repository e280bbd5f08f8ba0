"""SageMaker built-in algorithms: the registry image of each, per region.

Facts: which ECR account serves an algorithm's image in each region (most
algorithms share one of a few account sets), and its repository and tag.
``image_for("K-Means", "us-west-2")`` gives
``174872318107.dkr.ecr.us-west-2.amazonaws.com/kmeans:1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

# The account set shared by kmeans, pca, linear-learner and the other "1" algorithms.
_GENERAL: Mapping[str, str] = MappingProxyType({
    "af-south-1": "455444449433", "ap-east-1": "286214385809",
    "ap-northeast-1": "351501993468", "ap-northeast-2": "835164637446",
    "ap-northeast-3": "364406365360", "ap-south-1": "991648021394",
    "ap-southeast-1": "475088953585", "ap-southeast-2": "712309505854",
    "ca-central-1": "469771592824", "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083", "eu-central-1": "664544806723",
    "eu-north-1": "669576153137", "eu-south-1": "257386234256",
    "eu-west-1": "438346466558", "eu-west-2": "644912444149", "eu-west-3": "749696950732",
    "me-south-1": "249704162688", "sa-east-1": "855470959533",
    "us-east-1": "382416733822", "us-east-2": "404615174143",
    "us-gov-west-1": "226302683700", "us-west-1": "632365934929",
    "us-west-2": "174872318107",
})

# blazingtext, image-classification, object-detection, semantic-segmentation, seq2seq
_VISION_TEXT: Mapping[str, str] = MappingProxyType({
    **_GENERAL,
    "ap-northeast-1": "501404015308", "ap-northeast-2": "306986355934",
    "ap-southeast-2": "544295431143", "eu-central-1": "813361260812",
    "eu-west-1": "685385470294", "us-east-1": "811284229777", "us-east-2": "825641698319",
    "us-west-2": "433757028032",
})

_DEEPAR: Mapping[str, str] = MappingProxyType({
    **_GENERAL,
    "ap-northeast-1": "633353088612", "ap-northeast-2": "204372634319",
    "ap-southeast-2": "514117268639", "eu-central-1": "495149712605",
    "eu-west-1": "224300973850", "us-east-1": "522234722520", "us-east-2": "566113047672",
    "us-west-2": "156387875391",
})

_LDA: Mapping[str, str] = MappingProxyType({
    "ap-northeast-1": "258307448986", "ap-northeast-2": "293181348795",
    "ap-south-1": "991648021394", "ap-southeast-1": "475088953585",
    "ap-southeast-2": "297031611018", "ca-central-1": "469771592824",
    "eu-central-1": "353608530281", "eu-west-1": "999678624901",
    "eu-west-2": "644912444149", "us-east-1": "766337827248", "us-east-2": "999911452149",
    "us-gov-west-1": "226302683700", "us-west-1": "632365934929",
    "us-west-2": "266724342769",
})

# sagemaker-xgboost (the framework images, 0.90 and later)
_XGBOOST: Mapping[str, str] = MappingProxyType({
    "af-south-1": "510948584623", "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037", "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886", "ap-south-1": "720646828776",
    "ap-southeast-1": "121021644041", "ap-southeast-2": "783357654285",
    "ca-central-1": "341280168497", "cn-north-1": "450853457545",
    "cn-northwest-1": "451049120500", "eu-central-1": "492215442770",
    "eu-north-1": "662702820516", "eu-south-1": "978288397137",
    "eu-west-1": "141502667606", "eu-west-2": "764974769150", "eu-west-3": "659782779980",
    "me-south-1": "801668240914", "sa-east-1": "737474898029",
    "us-east-1": "683313688378", "us-east-2": "257758044811",
    "us-gov-west-1": "414596584902", "us-west-1": "746614075791",
    "us-west-2": "246618743249",
})


@dataclass(frozen=True)
class Algorithm:
    repository: str
    tag: str
    accounts: Mapping[str, str]


_ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType({
    "blazingtext": Algorithm("blazingtext", "1", _VISION_TEXT),
    "factorization-machines": Algorithm("factorization-machines", "1", _GENERAL),
    "forecasting-deepar": Algorithm("forecasting-deepar", "1", _DEEPAR),
    "image-classification": Algorithm("image-classification", "1", _VISION_TEXT),
    "ipinsights": Algorithm("ipinsights", "1", _GENERAL),
    "kmeans": Algorithm("kmeans", "1", _GENERAL),
    "knn": Algorithm("knn", "1", _GENERAL),
    "lda": Algorithm("lda", "1", _LDA),
    "linear-learner": Algorithm("linear-learner", "1", _GENERAL),
    "ntm": Algorithm("ntm", "1", _GENERAL),
    "object-detection": Algorithm("object-detection", "1", _VISION_TEXT),
    "object2vec": Algorithm("object2vec", "1", _GENERAL),
    "pca": Algorithm("pca", "1", _GENERAL),
    "randomcutforest": Algorithm("randomcutforest", "1", _GENERAL),
    "semantic-segmentation": Algorithm("semantic-segmentation", "1", _VISION_TEXT),
    "seq2seq": Algorithm("seq2seq", "1", _VISION_TEXT),
    "xgboost": Algorithm("sagemaker-xgboost", "1.7-1", _XGBOOST),
})

# The names v1 accepted (case and surrounding spaces ignored), besides the keys above.
_ALIASES: Mapping[str, str] = MappingProxyType({
    "deepar forecasting": "forecasting-deepar",
    "factorization machines": "factorization-machines",
    "image classification": "image-classification",
    "ip insights": "ipinsights",
    "k-means": "kmeans",
    "k-nearest neighbors": "knn",
    "k-nn": "knn",
    "linear learner": "linear-learner",
    "neural topic model": "ntm",
    "object detection": "object-detection",
    "random cut forest": "randomcutforest",
    "semantic segmentation": "semantic-segmentation",
    "sequence to sequence": "seq2seq",
    "seq2seq modeling": "seq2seq",
})


class UnknownRegion(LookupError):
    pass


def builtin(name: str) -> Algorithm | None:
    """The built-in algorithm called ``name`` (v1's names, or the repository's), or None."""
    key = name.strip().lower()
    return _ALGORITHMS.get(_ALIASES.get(key, key))


def image_for(name: str, region: str) -> str | None:
    """The registry image of a built-in algorithm in ``region``; None if ``name``
    is no built-in algorithm. ``name:tag`` picks another tag (e.g. ``xgboost:1.5-1``).
    Raises :class:`UnknownRegion` when the algorithm is not served there."""
    base, _, tag = name.partition(":")
    algorithm = builtin(base)
    if algorithm is None:
        return None
    account = algorithm.accounts.get(region)
    if account is None:
        raise UnknownRegion(
            f"built-in algorithm {base.strip()!r} has no image known for region {region!r} "
            f"(known: {', '.join(sorted(algorithm.accounts))}); pass its image instead"
        )
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    tag = tag.strip() or algorithm.tag
    return f"{account}.dkr.ecr.{region}.{domain}/{algorithm.repository}:{tag}"
