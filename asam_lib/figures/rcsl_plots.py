"""The figures of notebook 03 (RCSL), drawn from what :mod:`asam_lib.experiments.rcsl_study` returns, in the style of
:mod:`asam_lib.figures.plots` (call :func:`asam_lib.figures.plots.set_style` first; show them with
:func:`asam_lib.figures.plots.show`)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from asam_lib.editors import methods, rcsl
from asam_lib.figures.plots import paired_forest, quantity_colours

DESIGN_PANELS = (  # (tier, metric, x label) of the design study's figure
    ("hard", "Unit", "Unit, hard tier (known)"),
    ("standard", "I-Gen", "I-Gen"),
    ("standard", "T-Loc", "T-Loc"),
    ("standard", "I-Loc", "I-Loc"),
)


def point_clouds(descent: dict[tuple[str, bool], torch.Tensor], n_steps: int, learning_rate: float) -> plt.Figure:
    """One row per objective: the points' paths under the symmetric and the asymmetric flow (two panels, the
    anchor a star, the final top direction dashed) and the tail share ``s2² / Σ s²`` per step of both (third
    panel). ``descent``: :func:`asam_lib.experiments.rcsl_study.point_cloud_descent` (2-d points)."""
    fig, axes = plt.subplots(3, 3, figsize=(11, 10))
    colour = {False: "0.35", True: methods.colours()["ASAM"]}
    for row, objective in enumerate(rcsl.OBJECTIVES):
        for col, asymmetric in enumerate((False, True)):
            ax, P = axes[row, col], descent[objective, asymmetric]
            ax.plot(P[:, 1:, 0], P[:, 1:, 1], color=colour[asymmetric], linewidth=0.8, alpha=0.5)
            ax.plot(P[:, 0, 0], P[:, 0, 1], color="k", linewidth=0.8)
            ax.scatter(P[0, 1:, 0], P[0, 1:, 1], s=30, facecolors="none", edgecolors="0.5", label="variants, start")
            ax.scatter(P[-1, 1:, 0], P[-1, 1:, 1], s=30, color=colour[asymmetric], label="variants, end")
            ax.scatter(*P[0, 0], marker="*", s=220, facecolors="white", edgecolors="k", zorder=3, label="anchor, start")
            ax.scatter(*P[-1, 0], marker="*", s=140, color="k", zorder=3, label="anchor, end")
            ax.axline(
                (0, 0),
                tuple(torch.linalg.svd(P[-1]).Vh[0].tolist()),
                linestyle="--",
                color="0.6",
                linewidth=0.8,
                label="top direction, end",
            )
            ax.scatter(0, 0, marker="+", color="k", s=40)
            ax.set(
                xlim=(-1.5, 3.5),
                ylim=(-1.5, 3.5),
                aspect="equal",
                xlabel="coordinate 1 (a.u.)",
                ylabel="coordinate 2 (a.u.)",
                title=f"{objective}, {'asymmetric (anchor detached)' if asymmetric else 'symmetric'}",
            )
            share = [rcsl.spectrum(H)[1].item() for H in P]
            axes[row, 2].semilogy(share, color=colour[asymmetric], label="asymmetric" if asymmetric else "symmetric")
        axes[row, 2].set(
            xlabel="SGD step",
            ylabel="tail share  s2² / Σ s² (log)",
            title=f"{objective}: secondary direction",
            ylim=(1e-12, 1),
        )
        axes[row, 2].legend(fontsize=8)
    fig.legend(
        *axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=9, bbox_to_anchor=(0.5, 0.0)
    )
    fig.suptitle(f"Gradient descent on each RCSL objective ({n_steps} SGD steps, step size {learning_rate})")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def condition_palette() -> dict[str, str]:
    """Colours of the spectrum study's conditions (:func:`asam_lib.experiments.rcsl_study.spectrum_editors`): the
    methods' own, a light ASAM for ASAM without RCSL, grey for the unedited model."""
    colours = methods.colours()
    return {"unedited": "0.6", "Patch": colours["Patch"], "ASAM without RCSL": "#f4a582", "ASAM": colours["ASAM"]}


def spectrum(
    spectra: dict[tuple[str, str, str], torch.Tensor],
    tails: pd.DataFrame,
    example: str,
    conditions: Sequence[str],
    rows: Sequence[str],
) -> plt.Figure:
    """The spectrum of H for the edit ``example`` on its LAR variants and its unit members, every condition on
    one log axis (two panels), and the mean tail energy per set of ``rows`` and condition over every edit with a
    95% interval (third panel). ``spectra`` and ``tails``: :func:`asam_lib.experiments.rcsl_study.spectrum_study`."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    palette = condition_palette()
    for ax, shown in zip(axes[:2], ["LAR variants", "unit members"]):
        for condition in conditions:
            s = spectra[example, condition, shown]
            ax.semilogy(
                range(1, len(s) + 1),
                s,
                marker="o",
                markersize=3,
                color=palette[condition],
                label=condition,
                linestyle="--" if condition == "unedited" else "-",
                # ASAM without RCSL wide and underneath: where it coincides with ASAM, a band shows around ASAM's line
                linewidth=4 if condition == "ASAM without RCSL" else 1,
                zorder={"unedited": 3, "ASAM without RCSL": 1}.get(condition, 2),
            )
        ax.set(
            xlabel="singular value index i",
            ylabel="share of energy  s_i² / Σ s²  (log)",
            title=f"{example}, {shown}: spectrum of H ({len(s)} rows)",
        )
        ax.legend(fontsize=8)
    sns.pointplot(
        tails,
        x="rows",
        y="tail energy",
        hue="condition",
        order=list(rows),
        hue_order=list(conditions),
        palette=palette,
        dodge=0.4,
        linestyle="none",
        errorbar=("ci", 95),
        seed=0,
        markersize=5,
        ax=axes[2],
    )
    axes[2].set(
        yscale="log",
        xlabel="rows of H",
        ylabel="tail energy L_rank, r = 1 (log)",
        title=f"Tail energy, mean over {tails.case.nunique()} edits (95% CI)",
    )
    axes[2].set_xticks(range(len(rows)), [r.replace(" ", "\n") for r in rows])
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


def design_forest(paired: pd.DataFrame, pairs: Sequence[tuple[str, str]], n_edits: int) -> plt.Figure:
    """The design study's paired differences (:class:`asam_lib.experiments.rcsl_study.DesignStudy`), one row per form,
    one panel per :data:`DESIGN_PANELS` entry."""
    return paired_forest(
        paired,
        [f"{name} - {control}" for name, control in pairs],
        list(DESIGN_PANELS),
        f"RCSL design study: each form minus the same editor without RCSL ({n_edits} development edits)",
        methods.colours()["ASAM"],
        # the effects that matter are a few hundredths: one collapsing form is drawn as an arrow with its value
        clip=0.15,
    )


def gradient_shares(traces: pd.DataFrame, order: Sequence[str]) -> plt.Figure:
    """The rank term's share of the gradient norm at every traced step, one row per configuration in ``order``
    (log axis). ``traces``: :func:`asam_lib.experiments.rcsl_study.gradient_share_traces`."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    sns.stripplot(
        traces[traces.term == "rank"],
        x="grad_share",
        y="config",
        order=list(order),
        color=methods.colours()["ASAM"],
        size=3,
        jitter=0.2,
        ax=ax,
    )
    ax.set(
        xscale="log",
        xlabel="share of the step's gradient norm from the rank term (every step, log)",
        ylabel="",
        title="What the rank term weighs in an edit",
    )
    fig.tight_layout()
    return fig


def edit_walkthrough(
    values: pd.DataFrame, shares: pd.DataFrame, refreshed: Sequence[int], stop_loss: float
) -> plt.Figure:
    """One edit step by step: each loss term's value (left, with the stopping threshold ``stop_loss``) and its
    share of the gradient norm (right), both log, with the steps before which LAR ``refreshed`` the variants
    dotted. ``values`` and ``shares``: step (index) x term, from :func:`asam_lib.editors.edit_trace.trace_edit`."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    term_colours = quantity_colours(list(values.columns))  # loss terms, not methods: none wears a method's colour
    for term in values.columns:
        style = {"marker": "o", "markersize": 3, "label": term, "color": term_colours[term]}
        axes[0].plot(values.index, values[term].clip(lower=1e-6), **style)
        # a term with no gradient yet (Patch's memory loss before it is active) has no point on the log axis
        share = shares[term]
        axes[1].plot(shares.index, share.where(share > 0), **style)
    for ax in axes:
        for step in refreshed:
            ax.axvline(step, color="0.75", linestyle=":", linewidth=1)
    axes[0].axhline(stop_loss, color="black", linewidth=0.8, linestyle="--")
    axes[0].set(yscale="log", xlabel="editing step (dotted: variants refreshed)", ylabel="term value (log)")
    axes[0].set_title("Loss terms; dashed: the stopping threshold")
    axes[1].set(yscale="log", xlabel="editing step", ylabel="share of the gradient norm (log)", title="Gradient shares")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
