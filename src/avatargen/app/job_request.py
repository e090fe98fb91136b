"""Turning a planned job into what a backend is sent (the provider request) and what its
image carries (the PNG metadata). Photos are decoded, pose skeletons drawn and faces cropped
once per run, however many jobs and fallbacks use them."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from avatargen.catalog import Catalog, Model
from avatargen.errors import InputError
from avatargen.images import CONTROLNET_ARCHITECTURES
from avatargen.plan import Job
from avatargen.weights import metadata as weights_metadata


class RequestBuilder:
    def __init__(
        self,
        catalog: Catalog,
        poses: dict[str, Any],
        workers: int,
        pose_pngs: dict[tuple[str, int, int], bytes] | None = None,
    ) -> None:
        self.catalog = catalog
        self.poses = poses  # pose spec -> PoseSource (see poses/sources.py)
        self.photos = _photo_cache(catalog, workers)
        # (spec, width, height) -> the skeleton PNG; given to share it beyond one batch
        self._pose_cache = {} if pose_pngs is None else pose_pngs
        self._lock = threading.Lock()

    def prepare(self, jobs: list[Job], models_to_try) -> None:
        """Size the photo cache for these jobs: decoded no larger than needed, each photo let go
        of after its last job."""
        self.photos.min_side = self._photo_side(jobs, models_to_try)
        self.photos.expect(Counter(job.input_hash for job in jobs))

    def _photo_side(self, jobs: list[Job], models_to_try) -> int:
        """The largest side any of the jobs' models (fallbacks included) sends the photo at, so
        a 12 MP JPEG is decoded at 1/4 scale for a 512x512 model instead of 1/2. A face crop or a
        pose found in the photo wants more detail: then the largest size of the catalog."""
        if not jobs or any(
            job.params.identity_scale or self.poses[job.params.pose_spec].per_photo for job in jobs
        ):
            return self.photos.min_side
        sides = [max(job.params.width, job.params.height) for job in jobs]
        for key in {job.model for job in jobs}:
            sides += [max(m.size) for m in models_to_try(self.catalog.by_key[key])]
        return max(sides)

    def release_photo(self, job: Job) -> None:
        self.photos.release(job.input_hash)  # this job asks for its photo no more

    # ------------------------------------------------------------ the request
    def request(self, job: Job, model: Model):
        from avatargen.photo_prep import needs_lossless
        from avatargen.providers.base import GenerationRequest

        width, height = model.size if model.key != job.model else (job.params.width, job.params.height)
        init = None
        references: tuple[bytes, ...] = ()
        lossless = needs_lossless(model.architecture)
        if job.params.strength is not None or model.edits_photo:
            init = self.photos.init_image(job.input_path, job.input_hash, width, height, lossless)
        # Always read, even when only the pose is sent: a file that is not a usable image is a
        # failed job, never an avatar made from nothing (and the face crop reuses the decode).
        # A JPEG sent as its own data was checked whole without decoding: decoded only if its face is needed.
        photo = None
        as_is = init is not None and self.photos.sent_as_is(job.input_hash, width, height)
        if not as_is or _wants_faces(job, model):
            photo = self.photos.photo(job.input_path, job.input_hash)
        if model.edits_photo and job.params.references:
            files = dict(job.reference_files)
            references = tuple(
                self.photos.init_image(files[digest], digest, width, height, lossless)
                for digest in job.params.references
                if digest in files and digest != job.input_hash  # the subject is image 1 already
            )
        crops = self._face_crops(job, model, photo)
        return GenerationRequest(
            model=model,
            prompt=job.params.prompt,
            negative_prompt=job.params.negative_prompt,
            width=width,
            height=height,
            steps=job.params.steps,
            guidance_scale=job.params.guidance_scale,
            controlnet_conditioning_scale=job.params.controlnet_conditioning_scale,
            seed=job.seed,
            pose_png=self._pose_png(job, width, height),
            pose_description=self.poses[job.params.pose_spec].description,
            init_image_png=init,
            strength=job.params.strength if init else None,
            ip_adapter_images=tuple(crop.png for crop in crops),
            ip_adapter_scale=job.params.identity_scale,
            ip_adapter_find_faces=any(crop.on_server for crop in crops),
            reference_images=references,
        )

    def _pose_png(self, job: Job, width: int, height: int) -> bytes:
        from avatargen.images import png_bytes

        spec = job.params.pose_spec
        pose = self.poses[spec]
        if pose.per_photo:  # the photo's own pose: found once per photo and size

            def draw(photo) -> bytes:
                return png_bytes(pose.image(width, height, photo))

            return self.photos.made(job.input_path, job.input_hash, ("pose", spec, width, height), draw)
        with self._lock:
            cached = self._pose_cache.get((spec, width, height))
        if cached is None:  # the same skeleton for every photo: render it once per size
            cached = png_bytes(pose.image(width, height))
            with self._lock:
                self._pose_cache[(spec, width, height)] = cached
        return cached

    def _face_crops(self, job: Job, model: Model, photo=None) -> list:
        """The photo's face crop, then its references', each cropped once per batch; none when
        identity is off or the model that runs has no adapter (a fallback without one)."""
        if not _wants_faces(job, model):
            return []
        from avatargen.faces import shared_cache

        faces = shared_cache()
        crops = [faces.get(job.input_hash, job.input_path, photo)]
        files = dict(job.reference_files)
        for digest in job.params.references:
            if digest not in files:
                raise InputError(
                    f"{job.input_path}: this job's reference photos are not known to this run",
                    "run the generate command again with the same --ref/--person options",
                )
            crops.append(faces.get(digest, files[digest]))
        return crops

    # ------------------------------------------------------------ the image's metadata
    def metadata(self, job: Job, ran: Model, result_sampler: str | None = None) -> dict[str, Any]:
        p = job.params
        width, height = ran.size if ran.key != job.model else (p.width, p.height)
        return {
            "job_key": job.job_key,
            "input": str(job.input_path),
            "input_hash": job.input_hash,
            "pose": job.pose,
            "model": ran.key,
            "model_requested": job.model,
            "seed": job.seed,
            "prompt": p.prompt,
            "negative_prompt": p.negative_prompt,
            "steps": p.steps,
            "guidance_scale": p.guidance_scale,
            # None: the model that ran has no ControlNet (an editing model takes the pose as an image).
            "controlnet_conditioning_scale": p.controlnet_conditioning_scale
            if ran.architecture in CONTROLNET_ARCHITECTURES
            else None,
            "strength": p.strength,
            "width": width,
            "height": height,
            "architecture": ran.architecture,
            # The scheduler the backend reports having used (A1111's `Sampler`), when it does.
            **({"sampler": result_sampler} if result_sampler else {}),
            **weights_metadata(p.weights),
            **self._identity_metadata(job, ran),
        }

    def _identity_metadata(self, job: Job, ran: Model) -> dict[str, Any]:
        """What reproduces the identity part: the adapter that ran, its scale, and hashes (never
        paths) of the reference photos and of the exact face crops sent."""
        crops = self._face_crops(job, ran)  # cached: no detection again
        if not crops:
            return {}
        from avatargen.faces import identity_crops

        adapter = ran.identity_adapter
        return {
            "identity": {
                "adapter": {
                    "repo": adapter.repo,
                    "subfolder": adapter.subfolder,
                    "weight_name": adapter.weight_name,
                    "image_encoder_folder": adapter.image_encoder_folder,
                },
                "scale": job.params.identity_scale,
                "references": list(job.params.references),
                **identity_crops(crops),
            }
        }


def _wants_faces(job: Job, model: Model) -> bool:
    return bool(job.params.identity_scale) and model.identity_adapter is not None


def _photo_cache(catalog: Catalog, workers: int):
    """Photos decoded once per batch: a few more kept than workers run, each decoded no larger
    than the largest model needs."""
    from avatargen.photo_prep import PhotoCache

    largest = max((max(m.size) for m in catalog.by_key.values()), default=1024)
    return PhotoCache(keep=workers + 2, min_side=largest)
