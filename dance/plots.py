"""Plotly figure builders (history, probabilities, confusion matrix, ...); they return figures and draw nothing."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots


def history_figure(history: Sequence[dict]) -> go.Figure:
    """The article's two graphs side by side: train-vs-validation loss and accuracy per epoch."""
    frame = pd.DataFrame(list(history))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    if frame.empty:
        return fig
    for col, (metric, title) in enumerate((("loss", "Loss"), ("acc", "Accuracy")), start=1):
        for split, dash in (("train", "solid"), ("val", "dash")):
            key = f"{split}_{metric}"
            if key in frame:
                fig.add_trace(go.Scatter(x=frame["epoch"], y=frame[key], mode="lines+markers", name=f"{split} {metric}",
                                         line={"dash": dash}), row=1, col=col)
    fig.update_xaxes(title_text="epoch", tick0=1, dtick=max(1, len(frame) // 10))  # whole epochs only
    fig.update_layout(height=380, margin={"t": 40, "b": 40, "l": 40, "r": 20},
                      legend={"orientation": "h", "y": -0.28})  # below the axis titles, not over them
    return fig


def probability_figure(probs: dict[str, float], highlight: str | None = None) -> go.Figure:
    """Horizontal bar chart of class probabilities, most likely on top."""
    ranked = sorted(probs.items(), key=lambda kv: kv[1])
    colors = ["#d6336c" if name == highlight else "#adb5bd" for name, _ in ranked]
    fig = go.Figure(go.Bar(x=[p for _, p in ranked], y=[n for n, _ in ranked], orientation="h", marker_color=colors,
                           text=[f"{p:.1%}" for _, p in ranked], textposition="auto"))
    fig.update_layout(height=40 + 28 * len(ranked), margin={"t": 10, "b": 10, "l": 10, "r": 10},
                      xaxis={"range": [0, 1], "tickformat": ".0%"})
    return fig


def confusion_figure(matrix: np.ndarray, classes: Sequence[str], normalized: bool = False) -> go.Figure:
    """Confusion matrix: coloured cells drawn as shapes, with one selectable scatter marker per cell.

    Each marker carries customdata [true class, predicted class, count] so a click names its cell
    (st.plotly_chart returns no selection for heatmaps). Cells are shapes in data coordinates, so they
    tile exactly at any chart width, and selecting a marker does not fade the colours.
    """
    n = len(classes)
    counts = np.asarray(matrix, dtype=float)
    top = float(counts.max()) if counts.size and counts.max() > 0 else 1.0
    palette = sample_colorscale("Blues", [0.04 + 0.96 * v / top for v in counts.flatten()]) if counts.size else []
    xs, ys, labels, custom, text_colors, shapes = [], [], [], [], [], []
    for i in range(n):
        for j in range(n):
            value = float(counts[i, j])
            xs.append(classes[j])
            ys.append(classes[i])
            labels.append(f"{value:.0%}" if normalized else f"{int(value)}")
            custom.append([classes[i], classes[j], value])
            text_colors.append("white" if value > top * 0.55 else "#222")
            row = n - 1 - i  # true classes run top to bottom
            shapes.append({"type": "rect", "xref": "x", "yref": "y", "x0": j - 0.5, "x1": j + 0.5,
                           "y0": row - 0.5, "y1": row + 0.5, "fillcolor": palette[i * n + j],
                           "line": {"width": 1, "color": "white"}, "layer": "below"})
    for i in range(n):  # outline the diagonal last, so neighbouring cells do not cover it
        shapes.append({"type": "rect", "xref": "x", "yref": "y", "x0": i - 0.5, "x1": i + 0.5, "y0": n - 1 - i - 0.5,
                       "y1": n - 1 - i + 0.5, "line": {"width": 2, "color": "#d6336c"}, "layer": "below"})
    # Numbers are annotations, not marker text: a selection then fades nothing.
    annotations = [{"x": x, "y": y, "text": t, "showarrow": False, "font": {"color": c, "size": 13}}
                   for x, y, t, c in zip(xs, ys, labels, text_colors)]
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers", text=labels, customdata=custom,
        marker={"symbol": "square", "size": max(14, 300 // max(n, 1)), "color": "rgba(0,0,0,0)"},
        selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 1}},
        hovertemplate="true %{customdata[0]}<br>predicted %{customdata[1]}<br>%{text}<extra></extra>",
    ))
    fig.update_layout(
        height=140 + 52 * n, margin={"t": 20, "b": 20, "l": 20, "r": 20}, clickmode="event+select", dragmode=False,
        shapes=shapes, annotations=annotations, plot_bgcolor="rgba(0,0,0,0)", showlegend=False,
        xaxis={"title": "predicted", "categoryorder": "array", "categoryarray": list(classes), "side": "top",
               "showgrid": False, "zeroline": False, "tickangle": -35, "range": [-0.5, n - 0.5]},
        yaxis={"title": "true", "categoryorder": "array", "categoryarray": list(classes)[::-1], "showgrid": False,
               "zeroline": False, "scaleanchor": "x", "constrain": "domain", "range": [-0.5, n - 0.5]},
    )
    return fig


def class_distribution_figure(counts: pd.Series) -> go.Figure:
    """Bar chart of images per class."""
    fig = go.Figure(go.Bar(x=list(counts.index), y=list(counts.values), marker_color="#d6336c"))
    fig.update_layout(height=320, margin={"t": 20, "b": 40, "l": 40, "r": 20}, yaxis_title="images")
    return fig


def reliability_figure(bins: pd.DataFrame, title: str = "") -> go.Figure:
    """Reliability diagram: accuracy vs confidence per bin against the diagonal, each bin marked with its count."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "gray"}))
    for name, part in bins.groupby("series", sort=False):
        # Each marker is labelled with its number of images: a bin of 3 says far less than a bin of 300.
        counts = part["count"].astype(int).tolist() if "count" in part else None
        fig.add_trace(go.Scatter(
            x=part["confidence"], y=part["accuracy"], mode="lines+markers+text" if counts else "lines+markers",
            name=str(name), text=[f"n={c}" for c in counts] if counts else None, textposition="top center",
            textfont={"size": 10}, customdata=counts,
            hovertemplate="confidence %{x:.1%}<br>accuracy %{y:.1%}<br>%{customdata} images<extra></extra>"
            if counts else None))
    fig.update_layout(height=360, title=title, xaxis_title="confidence", yaxis_title="accuracy",
                      margin={"t": 40, "b": 40, "l": 40, "r": 20})
    return fig


def coverage_figure(curve: pd.DataFrame, threshold: float | None = None) -> go.Figure:
    """Accuracy on answered images vs the share answered, as the 'not sure' threshold varies."""
    fig = go.Figure(go.Scatter(x=curve["coverage"], y=curve["accuracy"], mode="lines", customdata=curve["threshold"],
                               hovertemplate="threshold %{customdata:.2f}<br>coverage %{x:.0%}<br>accuracy %{y:.1%}"))
    if threshold is not None and not curve.empty:
        row = curve.iloc[(curve["threshold"] - threshold).abs().argmin()]
        fig.add_trace(go.Scatter(x=[row["coverage"]], y=[row["accuracy"]], mode="markers", marker={"size": 12},
                                 name=f"threshold {threshold:.2f}"))
    fig.update_layout(height=340, xaxis_title="coverage (share answered)", yaxis_title="accuracy of answers",
                      xaxis={"tickformat": ".0%"}, yaxis={"tickformat": ".0%"}, showlegend=False,
                      margin={"t": 20, "b": 40, "l": 40, "r": 20})
    return fig


def image_size_figure(sizes: pd.DataFrame) -> go.Figure:
    """Width vs height of each image (columns image, width, height, label), one colour per class."""
    fig = go.Figure()
    for label, part in sizes.groupby("label", sort=True):
        fig.add_trace(go.Scatter(x=part["width"], y=part["height"], mode="markers", name=str(label),
                                 customdata=part["image"], marker={"size": 7, "opacity": 0.75},
                                 hovertemplate="%{customdata}<br>%{x} x %{y} px<extra>%{fullData.name}</extra>"))
    ticks = [50, 100, 200, 500, 1000, 2000, 5000, 10000]
    fig.update_layout(height=360, xaxis={"title": "width (px)", "type": "log", "tickvals": ticks},
                      yaxis={"title": "height (px)", "type": "log", "tickvals": ticks},
                      margin={"t": 20, "b": 40, "l": 40, "r": 20})
    return fig


def video_timeline_figure(times: Sequence[float], probs: np.ndarray, classes: Sequence[str],
                          segments: Sequence[tuple[float, float, str]]) -> go.Figure:
    """Class probabilities over a video's time (one line per class) with its segments as labelled bands."""
    import plotly.express as px

    palette = px.colors.qualitative.Plotly
    colour = {name: palette[i % len(palette)] for i, name in enumerate(classes)}
    fig = go.Figure()
    for start, end, label in segments:
        fig.add_vrect(x0=start, x1=end, fillcolor=colour.get(label, "#adb5bd"), opacity=0.12, line_width=0,
                      annotation_text=label, annotation_position="top left")
    probs = np.asarray(probs, dtype=float)
    for i, name in enumerate(classes):
        fig.add_trace(go.Scatter(x=list(times), y=probs[:, i] if len(probs) else [], mode="lines", name=name,
                                 line={"color": colour[name], "width": 2},
                                 hovertemplate=f"{name}: %{{y:.1%}} at %{{x:.1f}} s<extra></extra>"))
    fig.update_layout(height=320, margin={"t": 30, "b": 10, "l": 10, "r": 10}, hovermode="x unified",
                      xaxis={"title": "seconds"}, yaxis={"range": [0, 1.05], "tickformat": ".0%", "title": None},
                      legend={"orientation": "h", "y": -0.25})
    return fig
