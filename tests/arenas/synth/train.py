"""The editable file of the synthetic arena: two tunable constants."""

X = 0.2                  # first coordinate  [0, 1]
Y = 0.8                  # second coordinate [0, 1]
