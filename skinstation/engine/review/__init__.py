"""The dermatologists' review queue, reviews, and the reviews stations pull back."""
