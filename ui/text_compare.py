"""Explanations for the Compare page, with the app's notation (x_t, h_t, c, s_t, y_t, a_t). Never mixed with user text."""

COMPARE = r"""
**One change at a time.** Every model here trains on the *same* data, with the *same* optimizer, learning rate, batch
size, seed and number of epochs: the only difference between two lines is what the legend names (model A is the
Model page's model; B, C, D are "the same as A, but ..."). So a gap between two curves is the effect of that one
change. The budget is counted in epochs, not seconds, so that each model gets the same optimizer steps on the same
batches, however the server shares its processor between them; steps per second tells you what each one costs.

**What to look at.**
- *Loss and accuracy curves*: which model learns faster, and where each one levels off.
- *Sample predictions*: the same validation inputs through every model.
- *Gradient reaching each encoder timestep* $\lVert\partial L/\partial h_t\rVert$: how much the loss can still move
  the encoder's state at timestep $t$. Backpropagation carries the gradient from the decoder back through
  $h_T, h_{T-1}, \dots, h_1$; each step multiplies it by the RNN's Jacobian $\partial h_{t+1}/\partial h_t$. With a
  vanilla RNN those products shrink, so the first timesteps get almost nothing (**vanishing gradient**): the model
  cannot learn what the start of a long input means. The LSTM's cell state $c_t$ (and the GRU's update gate) give the
  gradient a path with little shrinking. Attention gives each $h_t$ a direct path from the decoder. For a
  bidirectional encoder $h_t = [\overrightarrow{h}_t; \overleftarrow{h}_t]$, both halves together.
- *Accuracy by source length* on fresh examples, including lengths longer than any seen in training (the unshaded
  part of the axis).
"""

WHY_ATTENTION = r"""
**Why attention?** Reversal of 5-30 letters, trained twice for the same number of epochs: an LSTM encoder-decoder
without attention (A) and the same model with additive (Bahdanau) attention (B).

**What the class should see.** Without attention, the decoder sees the input only through the context vector $c$:
$H$ numbers that must hold all 5 to 30 letters, in order, before the first output letter is written. Short inputs
fit; long ones do not, so **exact match falls as the inputs get longer**, and falls further past the longest training
length. With attention, the decoder looks back at every $h_t$ at every output step ($c_t = \sum_j a_{tj} h_j$), so the
length of the input hardly matters: its line stays high across the chart. The loss curves tell the same story
sooner: B's loss drops well below A's.
"""
