"""Geometry: the pinhole camera (`camera`), hand boxes and crops (`crop`), heatmap space (`codec`)."""
