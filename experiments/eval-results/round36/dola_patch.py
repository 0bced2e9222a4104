"""metagen with layer contrast (DoLa, Chuang et al. 2023) while sampling: the final layer's
distribution against an early layer's (the same head and final norm put on layer DOLA_LAYER's
residual stream), over the plausible tokens only (final probability >= DOLA_ALPHA x the top one):
score = log p_final + DOLA_WEIGHT x (log p_final - log p_early); other tokens dropped. Applied after
the penalties and bans, before temperature and the truncations. Kinds without context contrast only
(stories); everything else as it is. Env: DOLA_LAYER (default 12), DOLA_WEIGHT (0.5), DOLA_ALPHA (0.1)."""
import math, os, sys
import torch
from metagen import model as M, sampling as S

LAYER = int(os.environ.get("DOLA_LAYER", "12"))
WEIGHT = float(os.environ.get("DOLA_WEIGHT", "0.5"))
ALPHA = float(os.environ.get("DOLA_ALPHA", "0.1"))
STATE = {}


class _Stash(torch.nn.Module):
    """Wraps block LAYER: keeps its output's last position (B, dim) after every pass."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x, *args):
        out = self.block(x, *args)
        STATE["early"] = out[:, -1].float()
        return out


_original_from_state = M.Transformer.load_state


def load_state(self, state):
    _original_from_state(self, state)
    if not isinstance(self.layers[LAYER], _Stash):
        self.layers[LAYER] = _Stash(self.layers[LAYER])
    STATE["model"] = self


M.Transformer.load_state = load_state


class DoLaProcessor:
    def __call__(self, tokens, logits):
        early = STATE.get("early")
        model = STATE.get("model")
        if early is None or model is None:
            return logits
        if early.shape[0] != logits.shape[0]:
            if early.shape[0] != 1:
                return logits  # rows this trial does not follow (context contrast's twins)
            early = early.expand(logits.shape[0], -1)
        logp = torch.log_softmax(logits.float(), dim=-1)
        plausible = logp >= logp.max(dim=-1, keepdim=True).values + math.log(ALPHA)  # (B, V)
        idx = plausible.any(0).nonzero()[:, 0]  # the union of the rows' plausible tokens
        head = model.output
        w = head.weight[idx].float() * head.scale[idx].float()[:, None] if hasattr(head, "scale") else head.weight[idx].float()
        h = model.norm(early[:, None], torch.float32)[:, 0]  # (B, dim)
        early_logits = h @ w.T  # (B, k): log p_early up to a constant per row
        out = torch.full_like(logits, float("-inf"))
        sub = logp[:, idx]
        score = sub + WEIGHT * (sub - early_logits)
        score = torch.where(plausible[:, idx], score, torch.full_like(score, float("-inf")))
        out[:, idx] = score.to(out.dtype)
        return out


_original_build = S.build_processors


def build_processors(cfg, tokenizer, generators=None):
    out = _original_build(cfg, tokenizer, generators)
    if cfg.effective_strategy != "sample" or cfg.context_contrast > 0:
        return out
    at = next((i for i, p in enumerate(out) if isinstance(p, S.TemperatureProcessor)), len(out))
    return out[:at] + [DoLaProcessor()] + out[at:]


S.build_processors = build_processors
import metagen.search as SE
SE.build_processors = build_processors
from metagen.cli import app
app(sys.argv[1:], standalone_mode=False)
