"""Intermediate-feature distillation: the student's named layer outputs chase the teacher's.

When pruning narrowed a layer, a learned 1x1 projection (student width → teacher width) sits
between them, as in FitNets; it is trained with the student and thrown away afterwards.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from foundation.errors import UsageError


class FeatureMatcher(nn.Module):
    """Forward hooks on the same-named modules of teacher and student, plus width adapters."""

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        names: tuple[str, ...],
        example: tuple[torch.Tensor, ...],
    ) -> None:
        super().__init__()
        self.names = list(names)
        self.adapters = nn.ModuleDict()
        self._seen: dict[str, dict[str, torch.Tensor]] = {"teacher": {}, "student": {}}
        self._hooks = []
        if not names:
            return
        for role, module in (("teacher", teacher), ("student", student)):
            self._hook(role, module)
        with torch.no_grad():
            teacher(*example)
            student(*example)
        for name in self.names:
            t, s = self._seen["teacher"][name], self._seen["student"][name]
            if t.shape[1] != s.shape[1]:
                layer = nn.Conv2d if s.dim() == 4 else nn.Linear
                args = (s.shape[1], t.shape[1]) + ((1,) if s.dim() == 4 else ())
                self.adapters[name.replace(".", "_")] = layer(*args, bias=False)

    def _hook(self, role: str, module: nn.Module) -> None:
        if isinstance(module, torch.jit.ScriptModule):
            raise UsageError(
                "--distill-features needs an eager or torch.export model; TorchScript modules "
                "do not accept forward hooks. Drop --distill-features or re-save as .pt2."
            )
        known = dict(module.named_modules())
        for name in self.names:
            if name not in known:
                layers = [n for n in known if n][:20]
                raise UsageError(
                    f"--distill-features '{name}' is not a module of the model; modules: {layers}"
                )
            hook = known[name].register_forward_hook(self._store(role, name))
            self._hooks.append(hook)

    def _store(self, role: str, name: str) -> object:
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            self._seen[role][name] = output

        return hook

    def loss(self) -> torch.Tensor:
        """Mean MSE between adapted student features and the teacher's (0 without names)."""
        if not self.names:
            return torch.zeros(())
        total = torch.zeros(())
        for name in self.names:
            s, key = self._seen["student"][name], name.replace(".", "_")
            if key in self.adapters:
                adapter = self.adapters[key]
                s = adapter(s) if s.dim() == 4 else adapter(s.movedim(1, -1)).movedim(-1, 1)
            total = total + F.mse_loss(s, self._seen["teacher"][name].detach())
        return total / len(self.names)

    def remove(self) -> None:
        """Detach the hooks once training is done."""
        for hook in self._hooks:
            hook.remove()
