"""The download plan, read from the Hub before anything changes: so the disk list can say which
disks can hold the model, and a resumed download reuses the same plan."""

from __future__ import annotations

from leviathan_tui.records import ModelFile, ModelPlan
from leviathan_tui.runner import Step, StepContext
from leviathan_tui.units import decimal_size, human_size


def plan_source(ctx: StepContext) -> tuple[str, str, str, str, str]:
    m = ctx.config.model
    return (m.repo, m.revision, m.quant, m.config_repo, m.config_revision)


def model_plan(ctx: StepContext) -> ModelPlan:
    m = ctx.config.model
    plan = ctx.backends.hub.plan()
    files = tuple(
        ModelFile(f.name, f.path, f.repo, f.size, f.sha256, "gguf") for f in plan.gguf
    ) + tuple(ModelFile(f.name, f.path, f.repo, f.size, f.sha256, "config") for f in plan.config)
    return ModelPlan(
        repo=m.repo,
        revision=m.revision,
        quant=m.quant,
        config_repo=m.config_repo,
        config_revision=m.config_revision,
        folder=plan.folder,
        files=files,
        quants=tuple(sorted(plan.quants.items())),
        source=plan.source,
        exact=plan.exact,
    )


class PlanStep(Step):
    id = "preflight.model"
    title = "Ask the Hub what the model is"
    phase = "preflight"
    publishes = (ModelPlan,)

    def check(self, ctx: StepContext) -> str | None:
        plan = ctx.get(ModelPlan)
        if plan is not None and plan.same_source(plan_source(ctx)):
            return f"planned earlier: {plan.folder}, {len(plan.gguf)} shards, {decimal_size(plan.total)}"
        return None

    def run(self, ctx: StepContext) -> str:
        plan = model_plan(ctx)
        if not plan.exact:
            ctx.log(f"plan from {plan.source} (offline data: sizes approximate)", "warn")
        ctx.log(
            f"{plan.folder}: {len(plan.gguf)} shards, {decimal_size(plan.gguf_total)} "
            f"({human_size(plan.gguf_total)}) + {len(plan.files) - len(plan.gguf)} config files "
            f"from {plan.config_repo}"
        )
        if plan.quants:
            ctx.log(
                "quants in the repo: " + ", ".join(f"{q} {decimal_size(s)}" for q, s in plan.quants)
            )
        ctx.publish(plan)
        return f"{plan.folder}: {len(plan.files)} files, {decimal_size(plan.total)}"
