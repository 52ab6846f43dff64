"""Public CamelCase builders, in the style of keras.applications.

Family builders (``DenseNet``, ``QRNNLanguageModel`` …) take every argument; the named
variants (``DenseNet121`` …) are the registry's configs. ``QRNN`` is the QRNN
language model of arXiv:1611.01576; the layer is ``keras_zoo.layers.qrnn.QRNN``.
"""
from keras_zoo.models.alphago import AlphaGoPolicy, AlphaGoValue, AlphaGoZero
from keras_zoo.models.autoencoder import VAE, ConvAutoencoder
from keras_zoo.models.binarynet import BinaryNet, XNORNet
from keras_zoo.models.bytenet import ByteNetLM, ByteNetTranslation
from keras_zoo.models.dcgan import DCGAN, DCGANDiscriminator
from keras_zoo.models.densenet import DenseNet, DenseNet121, DenseNet169, DenseNet201, DenseNetBC100
from keras_zoo.models.dnc import DNC
from keras_zoo.models.fractalnet import FractalNet
from keras_zoo.models.gnmt import GNMT
from keras_zoo.models.hred import HRED, VHRED
from keras_zoo.models.lightrnn import LightRNNLanguageModel
from keras_zoo.models.mobilenet import MobileNet
from keras_zoo.models.nas import NASController
from keras_zoo.models.pix2pix import PatchGANDiscriminator, Pix2PixGenerator
from keras_zoo.models.pointer_sentinel import PointerSentinelLM
from keras_zoo.models.pixelcnn import GatedPixelCNN, PixelCNN, PixelRNNDiagonalBiLSTM, PixelRNNRowLSTM
from keras_zoo.models.prednet import PredNet
from keras_zoo.models.qrnn import QRNNClassifier, QRNNLanguageModel
from keras_zoo.models.qrnn_seq2seq import QRNNSeq2Seq
from keras_zoo.models.resnext import ResNeXt, ResNeXt29, ResNeXt50
from keras_zoo.models.rnn import RNNClassifier, RNNLanguageModel
from keras_zoo.models.ror import RoR
from keras_zoo.models.seq2seq import Seq2SeqAttention
from keras_zoo.models.ssd import SSDMobileNet
from keras_zoo.models.segmentation import FCN, UNet
from keras_zoo.models.soundnet import SoundNet
from keras_zoo.models.squeezenet import SqueezeNet, SqueezeNet1_0, SqueezeNet1_1
from keras_zoo.models.stackgan import (StackGANStage1, StackGANStage1Discriminator, StackGANStage2,
                                       StackGANStage2Discriminator)
from keras_zoo.models.stochastic_depth import StochasticDepthResNet
from keras_zoo.models.transformer import Transformer
from keras_zoo.models.videogan import VideoGAN
from keras_zoo.models.wavenet import WaveNet
from keras_zoo.models.word2vec import Word2Vec

QRNN = QRNNLanguageModel

__all__ = [
    "AlphaGoPolicy", "AlphaGoValue", "AlphaGoZero", "BinaryNet", "ByteNetLM", "ConvAutoencoder", "ByteNetTranslation", "DCGAN", "DCGANDiscriminator", "DNC",
    "DenseNet", "DenseNet121", "DenseNet169", "DenseNet201", "DenseNetBC100", "FCN", "FractalNet", "GNMT", "HRED", "LightRNNLanguageModel",
    "GatedPixelCNN", "MobileNet", "NASController", "PatchGANDiscriminator", "Pix2PixGenerator", "PixelCNN", "PixelRNNDiagonalBiLSTM", "PixelRNNRowLSTM", "PointerSentinelLM", "PredNet", "QRNN", "QRNNClassifier",
    "QRNNLanguageModel", "QRNNSeq2Seq", "RNNClassifier", "RNNLanguageModel", "ResNeXt", "ResNeXt29", "ResNeXt50",
    "RoR", "SSDMobileNet", "Seq2SeqAttention", "SoundNet", "SqueezeNet", "SqueezeNet1_0", "SqueezeNet1_1",
    "StackGANStage1", "StackGANStage1Discriminator", "StackGANStage2", "StackGANStage2Discriminator",
    "StochasticDepthResNet", "Transformer", "UNet", "VAE", "VHRED", "VideoGAN", "WaveNet", "Word2Vec", "XNORNet",
]
