"""The built-in samplers, all in k-diffusion's calling convention
``fn(denoiser, x, sigmas, *, noise=None, callback=None, **options) -> Tensor``."""
