//! Figures (work in progress).
