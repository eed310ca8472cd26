"""A small Keras CNN with BatchNorm on MNIST digits (28×28×1), compiled with Adam and categorical
cross-entropy: side A of the README's worked ``compare``. ``build()`` is a factory ``compare`` can
call; ``python examples/keras_cnn.py`` writes ``examples/keras_cnn.keras`` (shipped), its weights
drawn from seed 0.

    backprop-parity compare examples/keras_cnn.keras examples/torch_port.py:faithful
    backprop-parity compare examples/keras_cnn.keras examples/torch_port.py:two_mistakes
"""

from pathlib import Path

import keras


def build() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.CategoricalCrossentropy())
    return model


if __name__ == "__main__":
    build().save(Path(__file__).with_name("keras_cnn.keras"))
