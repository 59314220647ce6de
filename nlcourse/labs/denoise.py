"""Non-local means with learned theta and phi: the embedded Gaussian trained to denoise digits.

:class:`nlcourse.nlmeans.NLMeansNet` on noisy MNIST digits (:func:`nlcourse.data.noisy_digits`):
the same weighted mean of the noisy pixels as non-local means, with the patches' similarity
learned instead of fixed. It starts at non-local means (``from_nl_means``) or at random
(``from_random``). Every run also records what the fixed non-local means does on the same test
digits, with the bandwidth h that does best on the training digits, and a Gaussian blur's best.
"""

from __future__ import annotations

import torch

from ..budget import Budget, table
from ..data import load_mnist, noisy_digits
from ..nlmeans import NLMeansNet, best_h, gaussian_blur, nl_means, psnr
from .lab import Lab, check_model

__all__ = ["LAB", "MODELS", "BUDGETS", "SIGMA", "PATCH", "HS", "BLURS", "build", "load_data",
           "fixed", "measure"]

#: The model's name: where theta and phi start (nlcourse.nlmeans.INITS).
MODELS = ("from_nl_means", "from_random")
SIGMA = 0.3          # the noise's standard deviation, grey levels in [0, 1]
PATCH = 3            # the patches' side, pixels
#: The bandwidths and blurs the fixed denoisers are chosen among (on the training digits).
HS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
BLURS = (0.5, 0.75, 1.0, 1.25, 1.5)

BUDGETS = table("noisy digits", smoke=dict(epochs=1, batch_size=32, train_size=256, test_size=128),
                quick=dict(epochs=5, batch_size=32, train_size=10_000, test_size=1_000),
                full=dict(epochs=10, batch_size=32, train_size=20_000, test_size=2_000))


def build(model: str, **options) -> NLMeansNet:
    """NLMeansNet on 3 x 3 patches, theta and phi starting at non-local means (h = the noise's
    sigma) or at random; ``options`` go to NLMeansNet."""
    check_model(model, MODELS, "denoise")
    return NLMeansNet(**{"patch": PATCH, "h": SIGMA, "init": model.removeprefix("from_"),
                         **options})


def load_data(budget: Budget):
    """The budget's noisy digits (the same ones, with the same noise, for every model and seed)."""
    return noisy_digits(load_mnist(), budget.train_size, budget.test_size, sigma=SIGMA, seed=0)


@torch.no_grad()
def fixed(data, choose_on: int = 500) -> dict:
    """The fixed denoisers on the test digits, each with the setting that does best on the first
    ``choose_on`` training digits: non-local means (h among ``HS``, patches of
    ``PATCH``), a Gaussian blur (sigma among ``BLURS``); and the noisy digits themselves.
    Mean PSNR in dB."""
    noisy, clean = data.train_images[:choose_on].double(), data.train_labels[:choose_on].double()
    h, _ = best_h(noisy, clean, HS, PATCH)
    blur = max(BLURS, key=lambda s: psnr(gaussian_blur(noisy, s), clean).mean().item())
    test, truth = data.test_images.double(), data.test_labels.double()
    return {"nl_means_h": h, "nl_means_psnr": psnr(nl_means(test, h, PATCH), truth).mean().item(),
            "blur_sigma": blur, "blur_psnr": psnr(gaussian_blur(test, blur), truth).mean().item(),
            "noisy_psnr": psnr(test, truth).mean().item()}


def measure(net, data, device) -> dict:
    """What every run records beside its test PSNR: :func:`fixed`."""
    return fixed(data)


LAB = Lab(name="denoise", title="non-local means with learned theta and phi (the embedded "
                                "Gaussian), trained to denoise digits",
          pages=("notebooks/03_attention_maps",),
          models=MODELS, budgets=BUDGETS, build=build, load_data=load_data,
          default_model="from_nl_means", objective="denoise",
          settings=lambda model, budget: {"patch": PATCH, "sigma": SIGMA},
          measure=measure)
